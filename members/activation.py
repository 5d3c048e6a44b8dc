"""What the terminal should do after activateWxpayfaceMember answers (docs/protocols.md, "Face SDK:
member activation"). Pure data, no Django.

The SDK answers `return_code` (SUCCESS / ERROR / PARAM_ERROR / SYSTEMERROR, or one of this call's own codes) and an
optional integer `err_code` (the SDK's secondary codes). The most specific code known here decides the next step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NextAction(enum.StrEnum):
    NONE = "NONE"  # nothing to do: activated, or the user did not complete it; carry on with the sale
    REIDENTIFY = "REIDENTIFY"  # run getWxpayfaceUserInfo again, then offer activation again
    RETRY = "RETRY"  # call activateWxpayfaceMember again (after retry_after_ms)
    REINITIALIZE = "REINITIALIZE"  # call initWxpayface (after retry_after_ms), then retry
    CONFIGURE_DEVICE = "CONFIGURE_DEVICE"  # an admin must configure 刷脸会员 (卡包会员) for this device first
    FIX_REQUEST = "FIX_REQUEST"  # the activation parameters were wrong: a configuration/integration bug


@dataclass(frozen=True)
class Guidance:
    next_action: NextAction
    message: str
    retry_after_ms: int = 0


SUCCESS = "SUCCESS"

# Keyed by the code as the SDK sends it: this call's own error codes (接口错误码), the SDK's secondary
# codes (二级错误码) and the public return codes (公共错误码).
GUIDANCE: dict[str, Guidance] = {
    SUCCESS: Guidance(NextAction.NONE, "Membership activated."),
    # activateWxpayfaceMember's own codes
    "PARAMS_INVALID": Guidance(
        NextAction.FIX_REQUEST,
        "The activation parameters were rejected (appid, mch_id, store_id, authinfo, openid): fix the terminal's "
        "configuration; retrying the same request will not help.",
    ),
    "MEMBER_INFO_EXP_ERROR": Guidance(
        NextAction.REIDENTIFY, "The user's face identification has expired: identify the user again, then retry."
    ),
    "GET_MEMBER_INFO_FAIL_ERROR": Guidance(
        NextAction.RETRY, "WeChat could not load the membership information: try the activation again.", 1000
    ),
    "NOT_CONFIG_MEMBER_ERROR": Guidance(
        NextAction.CONFIGURE_DEVICE,
        "Face membership (卡包会员) is not configured for this device: stop offering activation here until an "
        "administrator configures it.",
    ),
    # The SDK's secondary codes (err_code)
    "271378620": Guidance(
        NextAction.REINITIALIZE, "The face service is not initialised: call initWxpayface, then retry."
    ),
    "271378621": Guidance(
        NextAction.REINITIALIZE,
        "The face service is still initialising: wait about 500 ms, call initWxpayface again, then retry.",
        500,
    ),
    # Public return codes, when nothing more specific was sent
    "PARAM_ERROR": Guidance(
        NextAction.FIX_REQUEST, "The SDK rejected the activation parameters: fix the terminal's request."
    ),
    "SYSTEMERROR": Guidance(NextAction.RETRY, "The face service had a system error: try the activation again.", 1000),
    "ERROR": Guidance(NextAction.NONE, "The activation was not completed; carry on without it."),
}

# A code nobody documented: do not loop on it.
UNKNOWN = Guidance(NextAction.NONE, "The activation did not succeed (unrecognised code); carry on without it.")


def classify(return_code: str, err_code: str = "") -> tuple[str, Guidance]:
    """(the code that decided, guidance). `err_code` wins when it is a known code, then `return_code`.

    A SUCCESS return_code is success whatever err_code says: the SDK reports the card as opened.
    """
    if return_code == SUCCESS:
        return SUCCESS, GUIDANCE[SUCCESS]
    for code in (err_code, return_code):
        if code and code != SUCCESS and code in GUIDANCE:
            return code, GUIDANCE[code]
    return err_code or return_code, UNKNOWN

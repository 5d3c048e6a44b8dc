from tests.shop import make_shop, shop  # noqa: F401  (fixtures)

"""The merchant API's routes (`/api/merchant/v1/`), included by portal/urls.py."""

v1: list = []

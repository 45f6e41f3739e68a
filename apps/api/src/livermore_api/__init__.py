"""livermore-api: the aiohttp admin API, live alert streams and the admin page."""

from livermore_api.app import create_app
from livermore_api.auth import Principal, hash_token, new_token
from livermore_api.config import ApiConfig
from livermore_api.routes import ROUTES
from livermore_api.routing import Access, Kind, Route

__all__ = [
    # application
    "ROUTES",
    "Access",
    "ApiConfig",
    "Kind",
    "Principal",
    "Route",
    "create_app",
    "hash_token",
    "new_token",
]

"""Thin views: validate (done by the route wrapper), authorize, call the packages, serialise."""

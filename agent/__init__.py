def package_version() -> str:
    """The installed fitagent's version ("unknown" when run from a tree that was never installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fitagent")
    except PackageNotFoundError:
        return "unknown"

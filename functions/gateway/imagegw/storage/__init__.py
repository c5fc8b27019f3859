"""Image stores for ``response_format=url``: local disk (development) behind one interface."""

from imagegw.storage.base import ImageStore, StoredLink, is_valid_key, new_key

__all__ = ["ImageStore", "StoredLink", "is_valid_key", "new_key"]

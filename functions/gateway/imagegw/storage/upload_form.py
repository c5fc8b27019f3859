"""What an upload form is, as the route and the stores both name it: where it is sent, the
field that carries the file, the content types it takes.

Its own module so that the HTTP layer can register the upload routes without importing the
stores (presigned posts, the local store) on a cold start that does not upload.
"""

from __future__ import annotations

UPLOAD_CONTENT_TYPES = ("image/png", "image/jpeg", "image/webp")
UPLOADS_PATH = "/v1/images/uploads"
FILE_FIELD = "file"

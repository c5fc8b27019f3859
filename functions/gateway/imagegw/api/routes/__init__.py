"""HTTP routes, one module per resource.

The route modules declare their routes when they are imported, and FastAPI analyses each route
then: its test for pydantic.v1 models is replaced first, so that the analysis does not import
pydantic.v1 (``fastpath/fastapi_routes.py``: 27 ms of every cold start).
"""

from imagegw.fastpath import fastapi_routes

fastapi_routes.install()

"""/docs without the internet: Swagger UI's script and style served by this server.

FastAPI's own /docs page loads Swagger UI from a CDN, so on a machine without internet access
it stays blank. The assets come from the fastapi-offline package (part of the serve extra);
without it /docs is a plain page that points at /openapi.json.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
NO_ASSETS_PAGE = """<!doctype html><html><head><title>facevae API</title></head><body>
<h1>facevae API</h1><p>The interactive documentation needs the fastapi-offline package
(<code>pip install 'facevae[serve]'</code>). The API description is at
<a href="{openapi}">{openapi}</a>; docs/serving.md describes every endpoint.</p></body></html>"""


def _assets() -> str | None:
    try:
        folder = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None
    return str(folder) if (folder / "swagger-ui-bundle.js").is_file() else None


def add_offline_docs(app: FastAPI, docs_url: str = "/docs") -> None:
    """Serve /docs (and Swagger UI's OAuth redirect page) from local files."""
    assets, openapi = _assets(), app.openapi_url or "/openapi.json"
    if assets is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        if assets is None:
            return HTMLResponse(NO_ASSETS_PAGE.format(openapi=openapi))
        return get_swagger_ui_html(openapi_url=openapi, title=f"{app.title} API",
                                   oauth2_redirect_url=app.swagger_ui_oauth2_redirect_url,
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon.png")

    if app.swagger_ui_oauth2_redirect_url:
        @app.get(app.swagger_ui_oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

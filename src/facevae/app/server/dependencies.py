"""What the routes take from the app (FastAPI `Depends`): the settings, and once the model
has loaded, the pipeline and the batcher (before that: NotReadyError, a 503)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ...inference.pipeline import FacePipeline
from .batching import MicroBatcher
from .errors import NotReadyError
from .settings import ServerSettings
from .uploads import UploadDecoder


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_pipeline(request: Request) -> FacePipeline:
    if request.app.state.pipeline is None:
        raise NotReadyError()
    return request.app.state.pipeline


def get_batcher(request: Request) -> MicroBatcher:
    if request.app.state.batcher is None:
        raise NotReadyError()
    return request.app.state.batcher


Settings = Annotated[ServerSettings, Depends(get_settings)]
Pipeline = Annotated[FacePipeline, Depends(get_pipeline)]
Batcher = Annotated[MicroBatcher, Depends(get_batcher)]


def get_uploads(request: Request) -> UploadDecoder:
    return request.app.state.uploads


Uploads = Annotated[UploadDecoder, Depends(get_uploads)]

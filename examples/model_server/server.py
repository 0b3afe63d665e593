"""A digits model server (FastAPI) that ships its logs to querywatch and acts on its decisions.

It imports only the light client (``querywatch.detector.client``); the model is its own
(scikit-learn's bundled digits, a logistic regression, trained at start-up in well under a
second). Run it with::

    export QUERYWATCH_URL=http://127.0.0.1:8000 QUERYWATCH_READER_KEY=qw_...
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092        # or EVENTS_FILE=events.jsonl
    uvicorn --factory examples.model_server.server:from_env --port 8080

    curl -s -H 'X-API-Key: sk-demo-1' -H 'content-type: application/json' \
         -d '{"instances": [[0, 0.3, ...64 numbers...]]}' http://127.0.0.1:8080/v1/predict

Each caller's ``X-API-Key`` is hashed into its querywatch client id. ``profiles/`` holds
the model's reference profile: point querywatch's consumer at it
(``QUERYWATCH_DETECTION__PROFILE_DIR=examples/model_server/profiles``) and detection starts
with the first event instead of after a 20,000-event warm-up.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from querywatch.detector.client import (
    DecisionClient,
    Emitter,
    Extractor,
    JsonlSink,
    KafkaSink,
    QuerywatchASGI,
    render,
)

MODEL_ID = "digits-v1"
DIM = 64
#: Callers send their raw API key in X-API-Key (hashed into the client id) and may name their org.
EXTRACTOR = Extractor(MODEL_ID, key_header="X-API-Key", org_header="X-Org")


class PredictRequest(BaseModel):
    instances: list[list[float]]


def train() -> LogisticRegression:
    """The served model: trained on 60% of the digits (the rest is what users send)."""
    data, targets = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(data))
    split = int(len(data) * 0.6)
    return LogisticRegression(max_iter=2000).fit(data[order][:split] / 16.0, targets[order][:split])


def answer(model: LogisticRegression, rows: list[list[float]]) -> list[dict[str, Any]]:
    """Label and scores per row: inputs clipped to [0, 1] and rounded to 3 decimals, scores to 4."""
    served = np.round(np.clip(np.asarray(rows, dtype=np.float64), 0.0, 1.0), 3)
    proba = np.round(model.predict_proba(served), 4)
    return [{"label": int(p.argmax()), "scores": p.tolist()} for p in proba]


def model_app(*, emitter: Emitter | None = None) -> FastAPI:
    """The model server's own routes, without querywatch (``create_app`` adds the middleware)."""
    model = train()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if emitter is not None:
            emitter.close()  # send what is buffered

    app = FastAPI(title="digits model server (querywatch example)", lifespan=lifespan)

    @app.post("/v1/predict")
    def predict(request: PredictRequest) -> dict[str, Any]:
        if not request.instances or any(len(row) != DIM for row in request.instances):
            raise HTTPException(422, f"send 'instances': a list of rows of {DIM} numbers")
        return {"model": MODEL_ID, "predictions": answer(model, request.instances)}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "events": emitter.stats() if emitter else None}

    return app


def create_app(
    *,
    emitter: Emitter | None,
    decisions: DecisionClient | None,
    degrade_mode: str = "round",
    trusted_proxy_header: str | None = None,
) -> QuerywatchASGI:
    """The model server with querywatch's middleware on ``/v1/predict``, and its counters
    (dropped events, decision look-ups, blocked and degraded requests) at ``/metrics``."""
    app = model_app(emitter=emitter)
    guarded = QuerywatchASGI(
        app,
        EXTRACTOR,
        emitter=emitter,
        decisions=decisions,
        degrade_mode=degrade_mode,
        trusted_proxy_header=trusted_proxy_header,
        paths=("/v1/predict",),
    )

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> str:
        return render(emitter=emitter, decisions=decisions, guard=guarded.guard)

    return guarded


def from_env() -> QuerywatchASGI:
    """The app configured from the environment (see the module docstring)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        sink: KafkaSink | JsonlSink = KafkaSink(
            os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ.get("KAFKA_TOPIC", "inference-logs")
        )
    else:
        sink = JsonlSink(os.environ.get("EVENTS_FILE", "events.jsonl"))
    url, key = os.environ.get("QUERYWATCH_URL"), os.environ.get("QUERYWATCH_READER_KEY")
    return create_app(
        emitter=Emitter(sink),
        decisions=DecisionClient(url, key, ttl=float(os.environ.get("DECISION_TTL", "5")))
        if url and key
        else None,
        degrade_mode=os.environ.get("DEGRADE_MODE", "round"),
        trusted_proxy_header=os.environ.get("TRUSTED_PROXY_HEADER"),
    )

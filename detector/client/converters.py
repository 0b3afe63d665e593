"""Events from serving systems that log on their own: KServe's inference logger, Triton traces.

* **KServe** posts each request and each response as a CloudEvent (binary mode: ``ce-*``
  headers, the payload as body) to the logger URL; the two share ``ce-id``.
  ``KServeJoiner`` holds whichever half comes first and returns the events once both are in.
  The client comes from the request headers KServe copies into the ``metadata`` extension
  (``logger.metadataHeaders``; ``ce-metadata`` as JSON).
* **Triton** writes a JSON trace file (``--trace-config level=TENSORS``): per traced request a
  header (model, ``request_id``), timestamps on Triton's steady clock, and its input and
  output tensors. Triton does not know the caller, so ``triton_events`` asks a function for
  the client of each ``request_id`` (e.g. the gateway's request-id log).

Both speak the v1 (``instances``/``predictions``) and v2 (``inputs``/``outputs`` tensors)
protocols. Standard library only.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .events import build_events, client_id_for_key

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


def _rows_of(tensor: Mapping[str, Any]) -> list[list[float]]:
    """A v2 tensor (flat or nested ``data`` plus ``shape``) as a list of rows."""
    data = tensor.get("data", [])
    flat = _flatten(data)
    shape = [int(s) for s in tensor.get("shape", [len(flat)])]
    rows = shape[0] if len(shape) > 1 else 1
    width = len(flat) // rows if rows else 0
    return [flat[i * width : (i + 1) * width] for i in range(rows)]


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [v for row in data for v in _flatten(row)]
    return list(data) if isinstance(data, list) else [data]


def v2_rows(
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    input_name: str | None = None,
    scores_output: str | None = None,
    label_output: str | None = None,
) -> list[tuple[list[float], dict[str, Any] | None]]:
    """Rows and predictions of an Open Inference Protocol (v2) exchange.

    Without names, the first input is the features, and an output of floats with one row
    per input row gives the scores, one of integers the labels.
    """
    inputs = {t.get("name"): t for t in request.get("inputs", [])}
    tensor = inputs.get(input_name) if input_name else next(iter(inputs.values()), None)
    if tensor is None:
        raise ValueError("the request has no input tensor")
    rows = _rows_of(tensor)
    scores: list[list[float]] | None = None
    labels: list[Any] | None = None
    for out in response.get("outputs", []):
        name, flat = out.get("name"), _flatten(out.get("data", []))
        per_row = _rows_of(out) if len(out.get("shape", [])) > 1 else [[v] for v in flat]
        if len(per_row) != len(rows):
            continue
        is_float = str(out.get("datatype", "FP32")).upper().startswith(("FP", "BF"))
        if name == scores_output or (scores_output is None and is_float and scores is None):
            scores = per_row
        elif name == label_output or (label_output is None and not is_float and labels is None):
            labels = [v[0] if len(v) == 1 else v for v in per_row]
    predictions = []
    for i in range(len(rows)):
        p: dict[str, Any] = {}
        if labels is not None:
            p["label"] = labels[i]
        if scores is not None:
            p["scores"] = scores[i]
        predictions.append(p or None)
    return list(zip(rows, predictions, strict=True))


def v1_rows(request: Mapping[str, Any], response: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    """Rows and predictions of a v1 exchange (``instances`` -> ``predictions``)."""
    rows = request.get("instances")
    if not isinstance(rows, list):
        raise ValueError("the request has no 'instances' list")
    answers = response.get("predictions", [])
    predictions: list[dict[str, Any] | None] = []
    for a in answers if len(answers) == len(rows) else [None] * len(rows):
        if isinstance(a, Mapping):
            predictions.append({k: a[k] for k in ("label", "scores") if k in a} or None)
        elif isinstance(a, list):
            predictions.append({"scores": a})
        elif isinstance(a, int | str):
            predictions.append({"label": a})
        else:
            predictions.append(None)
    return list(zip(rows, predictions, strict=True))


class KServeJoiner:
    """Pairs KServe logger CloudEvents by ``ce-id`` and turns each pair into events.

    ``client_header`` names the request header (listed in the InferenceService's
    ``logger.metadataHeaders``) that identifies the caller; ``hash_key`` says it carries a
    raw API key, hashed as the middleware does. At most ``capacity`` halves wait for their
    partner; older ones are dropped and counted in ``unmatched``.
    """

    def __init__(
        self,
        *,
        client_header: str = "x-api-key",
        hash_key: bool = True,
        model_id: str | None = None,
        capacity: int = 10_000,
    ) -> None:
        self.client_header = client_header.lower()
        self.hash_key = hash_key
        self.model_id = model_id
        self.capacity = capacity
        self._pending: OrderedDict[str, tuple[str, Mapping[str, str], bytes]] = OrderedDict()
        self.unmatched = 0
        self.unidentified = 0

    def add(self, headers: Mapping[str, str], body: bytes) -> list[dict[str, Any]]:
        """Take one CloudEvent (headers lower-cased); the events it completes, if any."""
        kind, event_id = headers.get("ce-type", ""), headers.get("ce-id", "")
        if kind not in (REQUEST_TYPE, RESPONSE_TYPE) or not event_id:
            raise ValueError(f"not a KServe inference log CloudEvent (ce-type {kind!r}, ce-id {event_id!r})")
        other = self._pending.pop(event_id, None)
        if other is None or other[0] == kind:
            self._pending[event_id] = (kind, headers, body)
            if len(self._pending) > self.capacity:
                self._pending.popitem(last=False)
                self.unmatched += 1
            return []
        mine = (headers, body)
        request, response = (mine, other[1:]) if kind == REQUEST_TYPE else (other[1:], mine)
        return self._events(event_id, request[0], json.loads(request[1]), json.loads(response[1]))

    def _events(
        self, event_id: str, headers: Mapping[str, str], request: Any, response: Any
    ) -> list[dict[str, Any]]:
        client = self._client(headers)
        if client is None:
            self.unidentified += 1
            return []
        rows = v2_rows(request, response) if "inputs" in request else v1_rows(request, response)
        model = self.model_id or headers.get("ce-inferenceservicename") or response.get("model_name")
        return build_events(
            request_id=event_id,
            ts=headers.get("ce-time") or time.time(),
            client_id=client,
            model_id=model or "unknown",
            rows=rows,
            meta={"namespace": headers.get("ce-namespace"), "component": headers.get("ce-component")},
        )

    def _client(self, headers: Mapping[str, str]) -> str | None:
        try:
            metadata = json.loads(headers.get("ce-metadata") or "{}")
        except ValueError:
            return None
        values = {str(k).lower(): v for k, v in metadata.items()}.get(self.client_header)
        value = values[0] if isinstance(values, list) and values else values
        if not isinstance(value, str) or not value:
            return None
        return client_id_for_key(value) if self.hash_key else value


def triton_events(
    trace: Iterable[Mapping[str, Any]],
    client_of: Callable[[str], str | None],
    *,
    input_name: str | None = None,
    scores_output: str | None = None,
    label_output: str | None = None,
    steady_to_epoch_ns: int | None = None,
) -> list[dict[str, Any]]:
    """Events from a Triton trace (the parsed JSON list), one per input row of each traced request.

    ``client_of(request_id)`` gives the caller (None: skipped). Triton stamps with its
    steady clock; ``steady_to_epoch_ns`` turns that into wall time (default: this host's
    current offset, right when converting on the Triton host itself). Traces of models run
    inside an ensemble (with a ``parent_id``) are skipped: the ensemble's own trace has the
    request's real input and output.
    """
    offset = time.time_ns() - time.monotonic_ns() if steady_to_epoch_ns is None else steady_to_epoch_ns
    heads: dict[Any, Mapping[str, Any]] = {}
    starts: dict[Any, int] = {}
    tensors: dict[Any, dict[str, list[Mapping[str, Any]]]] = {}
    for record in trace:
        trace_id = record.get("id")
        if "model_name" in record:
            heads[trace_id] = record
        for stamp in record.get("timestamps", []):
            if stamp.get("name") in ("REQUEST_START", "HTTP_RECV_START", "GRPC_WAITREAD_START"):
                starts[trace_id] = min(starts.get(trace_id, stamp["ns"]), int(stamp["ns"]))
        if "tensor" in record:
            by_activity = tensors.setdefault(trace_id, {})
            by_activity.setdefault(record.get("activity", ""), []).append(record["tensor"])
    events: list[dict[str, Any]] = []
    for trace_id, head in heads.items():
        if head.get("parent_id") or trace_id not in tensors:
            continue
        request_id = str(head.get("request_id") or trace_id)
        client = client_of(request_id)
        if client is None:
            continue
        io = tensors[trace_id]
        request = {"inputs": [_triton_tensor(t) for t in io.get("TENSOR_QUEUE_INPUT", [])]}
        response = {"outputs": [_triton_tensor(t) for t in io.get("TENSOR_BACKEND_OUTPUT", [])]}
        rows = v2_rows(
            request, response, input_name=input_name, scores_output=scores_output, label_output=label_output
        )
        events += build_events(
            request_id=request_id,
            ts=(starts.get(trace_id, time.monotonic_ns()) + offset) / 1e9,
            client_id=client,
            model_id=str(head["model_name"]),
            rows=rows,
        )
    return events


def _triton_tensor(tensor: Mapping[str, Any]) -> dict[str, Any]:
    """A trace tensor (``data`` and ``shape`` as comma-separated text) as a v2 tensor."""
    dtype = str(tensor.get("dtype", "FP32")).upper()
    parse: Callable[[str], Any] = float if dtype.startswith(("FP", "BF")) else int
    text = str(tensor.get("data", ""))
    data = [parse(v) for v in text.split(",") if v.strip()]
    shape: Sequence[int] = [int(s) for s in str(tensor.get("shape", len(data))).split(",") if s.strip()]
    return {"name": tensor.get("name"), "datatype": dtype, "shape": list(shape), "data": data}


class KServeReceiver:
    """An ASGI app to point KServe's ``logger.url`` at: joins the CloudEvents, emits the events.

    Answers 202 to every well-formed CloudEvent (even a half still waiting for its
    partner) and 400 with the reason to anything else, so a misconfigured logger shows up
    in KServe's own logs.
    """

    def __init__(self, joiner: KServeJoiner, emitter: Any) -> None:
        self.joiner = joiner
        self.emitter = emitter
        self.rejected = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, payload = 202, b""
        try:
            self.emitter.emit(self.joiner.add(headers, b"".join(chunks)))
        except (ValueError, KeyError, TypeError) as exc:
            self.rejected += 1
            status = 400
            problem = {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": str(exc)}
            payload = json.dumps(problem).encode()
        headers_out = [(b"content-type", b"application/problem+json")] if payload else []
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": payload})

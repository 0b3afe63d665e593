"""The hook between a model server's own HTTP shapes and querywatch's events.

The middleware asks an ``Extractor`` who the client is, which rows a request carried, what
the model answered for each, and how to put degraded answers back. The defaults read the
KServe v1 / TF-Serving shape (``{"instances": [...]}`` in, ``{"predictions": [...]}`` out,
each prediction ``{"label", "scores"}``, a bare score list or a bare label); subclass and
override a method for any other shape.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from .events import client_id_for_key

Row = tuple[Sequence[float], Mapping[str, Any] | None]
Transform = Callable[[Mapping[str, Any]], dict[str, Any]]


class Extractor:
    """Reads client, rows and predictions; writes degraded predictions back.

    ``key_header`` carries a raw API key (hashed into the client id, see
    ``client_id_for_key``); ``client_header`` an account id that is not a secret (used as
    is). ``org_header`` fills ``meta.org``, which lets querywatch group accounts of one
    organisation.
    """

    def __init__(
        self,
        model_id: str,
        *,
        key_header: str | None = "x-api-key",
        client_header: str | None = None,
        org_header: str | None = None,
        inputs_key: str = "instances",
        predictions_key: str = "predictions",
    ) -> None:
        if not model_id:  # every event would be refused as having no model
            raise ValueError("model_id is empty: name the model as querywatch should know it")
        self.model_id = model_id
        self.key_header = key_header.lower() if key_header else None
        self.client_header = client_header.lower() if client_header else None
        self.org_header = org_header.lower() if org_header else None
        self.inputs_key = inputs_key
        self.predictions_key = predictions_key

    def client_id(self, headers: Mapping[str, str]) -> str | None:
        """The client id of a request (headers lower-cased), or None (the request is not logged)."""
        if self.client_header and headers.get(self.client_header):
            return headers[self.client_header]
        if self.key_header and headers.get(self.key_header):
            return client_id_for_key(headers[self.key_header])
        bearer = headers.get("authorization", "")
        if bearer[:7].lower() == "bearer " and bearer[7:].strip():
            return client_id_for_key(bearer[7:].strip())
        return None

    def ambiguity(self, headers: Mapping[str, str], repeated: Collection[str] = ()) -> str | None:
        """Why the request names more than one client, or None. ``repeated``: header names
        sent more than once with different values. The server's own authentication may read
        another copy or the other header (Starlette reads a header's first copy, an app may
        authenticate by Bearer token alone), so a caller could be judged as someone else."""
        for name in (self.client_header, self.key_header, "authorization"):
            if name and name in repeated:
                return f"the {name} header is sent more than once with different values"
        if self.client_header and headers.get(self.client_header):
            return None
        key = headers.get(self.key_header, "") if self.key_header else ""
        bearer = headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else ""
        if key and token and key != token:
            return f"{self.key_header} and the Authorization bearer token name different keys"
        return None

    def org(self, headers: Mapping[str, str]) -> str | None:
        return headers.get(self.org_header) if self.org_header else None

    def model(self, path: str, request: Any) -> str:
        """The model id of a request (one fixed id by default; override for multi-model servers)."""
        return self.model_id

    def rows(self, request: Any, response: Any) -> list[Row]:
        """``(input, prediction)`` per row; an answer that does not fit gives no prediction."""
        inputs = request.get(self.inputs_key) if isinstance(request, Mapping) else request
        if not isinstance(inputs, list):
            raise ValueError(f"the request has no {self.inputs_key!r} list")
        if inputs and not isinstance(inputs[0], list):
            inputs = [inputs]  # a single row sent bare
        predictions = self._predictions(response)
        if len(predictions) != len(inputs):
            predictions = [None] * len(inputs)
        return [(numbers(row), self.prediction(p)) for row, p in zip(inputs, predictions, strict=True)]

    def prediction(self, answer: Any) -> dict[str, Any] | None:
        """One answer as ``{"label", "scores"}``: a dict with those keys, a bare score list (one
        number in it: a two-class model's second class's probability), or a bare label.

        A bare float is no answer: XGBoost's ``multi:softmax`` answers labels as 0.0, 1.0, 2.0,
        its ``binary:logistic`` probabilities as 0.83, and 1.0 is either. A server whose bare
        floats are probabilities overrides this to return ``{"scores": [answer]}``."""
        if isinstance(answer, Mapping):
            return {k: answer[k] for k in ("label", "scores") if k in answer} or None
        if isinstance(answer, list) and all(isinstance(v, int | float) for v in answer):
            return {"scores": answer}
        if isinstance(answer, int | str):
            return {"label": answer}
        return None

    def degrade(self, response: Any, transform: Transform) -> Any:
        """The response with every prediction replaced by ``transform(prediction)``."""
        predictions = self._predictions(response)
        degraded = [self._put_back(p, transform) for p in predictions]
        if isinstance(response, Mapping):
            return {**response, self.predictions_key: degraded}
        return degraded

    def _predictions(self, response: Any) -> list[Any]:
        found = response.get(self.predictions_key) if isinstance(response, Mapping) else response
        return found if isinstance(found, list) else []

    def _put_back(self, answer: Any, transform: Transform) -> Any:
        prediction = self.prediction(answer)
        if prediction is None:
            return answer
        changed = transform(prediction)
        if isinstance(answer, Mapping):
            rest = {k: v for k, v in answer.items() if k not in ("label", "scores")}
            return {**rest, **changed}
        return changed.get("scores", changed.get("label"))


def numbers(row: Any) -> Any:
    """A row with each numeric string as the number it reads as (``"0.5"`` -> 0.5), as the
    model saw it: servers that validate leniently (pydantic's default) answer such rows, and
    logged as strings they were refused by the consumer, so a thief who quoted its numbers
    was never scored. Anything else is left for the event's own checks.

    >>> numbers(["0.5", 1, " 2e-1 ", "x", True])
    [0.5, 1, 0.2, 'x', True]
    """
    if not isinstance(row, list):
        return row
    return [_number(v) if isinstance(v, str) else v for v in row]


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text

"""CloudFront KeyValueStore (`cloudfront-keyvaluestore`), which moto 5.2.5 does not implement.

The edge's canary share lives in a KeyValueStore (contracts/canary.py): the release tasks write
it with the KeyValueStore API and the edge function reads it. Here the API is answered inside
the sandbox's moto server (or moto's in-process stubber, for `mock_aws` tests), so a task's
boto3 client reaches it exactly as it reaches every other service, and the IAM enforcement
judges it like any other call (its response class is one of moto's, so the enforcer's hook on
`BaseResponse.call_action` sees it; the mapping is in orchestrator/iam/requests.py).

After the API reference and botocore's service model (2022-07-26):

- DescribeKeyValueStore -> KvsARN, ETag, ItemCount, TotalSizeInBytes, Created, LastModified,
  Status (READY); GetKey -> Key, Value, ItemCount, TotalSizeInBytes; ListKeys (MaxResults 1..50,
  10 by default, NextToken); PutKey, DeleteKey and UpdateKeys need `If-Match` with the store's
  current ETag (ConflictException, HTTP 409, otherwise) and answer the new ETag, ItemCount and
  TotalSizeInBytes. Every change gives the store a new ETag, as AWS does; a DeleteKey of a
  missing key is ResourceNotFoundException, as is any call on a store that does not exist.
- Limits: keys 1..512 bytes, values up to 1 KB, 5 MB per store (ValidationException /
  ServiceQuotaExceededException).

How requests get here: a request is this service's when its Authorization header's credential
scope names `cloudfront-keyvaluestore`. boto3 signs it with SigV4A (`AWS4-ECDSA-P256-SHA256`,
scope `<key>/<date>/cloudfront-keyvaluestore/aws4_request`, no region), which moto's dispatcher
cannot parse (it would answer as S3); the sandbox puts a check in front of moto's server app
(`DomainDispatcherApplication.__call__`) and of its in-process stubber
(`BotocoreStubber.process_request`). The signature itself is not verified (moto verifies none).

The endpoint: botocore's endpoint rules for this service put the store's account in front of
a custom endpoint's authority (`{scheme}://{accountId}.{authority}{path}`), a host no local
name resolves. `endpoint_url(moto_url)` gives the endpoint with a userinfo part
(`http://kvs@127.0.0.1:<port>`), so the account lands in the userinfo, which botocore drops
from the request: the request reaches the sandbox with `Host: 127.0.0.1:<port>`. The sandbox
gives it to the functions as `AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE`.
"""

from __future__ import annotations

import base64
import functools
import secrets
import string
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SERVICE = "cloudfront-keyvaluestore"
ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_CLOUDFRONT_KEYVALUESTORE"
STATUS = "READY"
MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024
MAX_STORE_BYTES = 5 * 1024 * 1024
LIST_DEFAULT = 10
LIST_MAX = 50
_ETAG_ALPHABET = string.ascii_uppercase + string.digits


def store_arn(account: str, store_id: str, partition: str = "aws") -> str:
    return f"arn:{partition}:cloudfront::{account}:key-value-store/{store_id}"


def endpoint_url(moto_url: str) -> str:
    """The `endpoint_url` a KeyValueStore client needs to reach the sandbox at `moto_url` (see
    the module's docstring: the endpoint rules prefix the authority with the account id)."""
    parts = urlsplit(moto_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"kvs@{host}", parts.path, "", ""))


def new_etag() -> str:
    # AWS's look like "KV1F83G8C2ARO7P": opaque, changed by every write.
    return "KV" + "".join(secrets.choice(_ETAG_ALPHABET) for _ in range(13))


class KeyValueStoreError(Exception):
    """An error of the KeyValueStore API: the code is an error shape of its service model."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _not_found(arn: str) -> KeyValueStoreError:
    return KeyValueStoreError("ResourceNotFoundException", f"Key value store {arn} was not found.")


@dataclass
class KeyValueStore:
    arn: str
    name: str
    comment: str = ""
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    etag: str = field(default_factory=new_etag)
    items: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(k.encode()) + len(v.encode()) for k, v in self.items.items())

    def totals(self) -> dict[str, Any]:
        return {"ItemCount": len(self.items), "TotalSizeInBytes": self.size}


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key.encode()) <= MAX_KEY_BYTES:
        raise KeyValueStoreError(
            "ValidationException", f"Key must be between 1 and {MAX_KEY_BYTES} bytes long."
        )
    return key


def _check_value(value: Any) -> str:
    if not isinstance(value, str) or len(value.encode()) > MAX_VALUE_BYTES:
        raise KeyValueStoreError(
            "ValidationException", f"Value must be at most {MAX_VALUE_BYTES} bytes long."
        )
    return value


class KeyValueStores:
    """Every KeyValueStore of the sandbox, by ARN; thread-safe (the edge reads while tasks write)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, KeyValueStore] = {}

    def create(self, arn: str, name: str, comment: str = "", *, replace: bool = False) -> KeyValueStore:
        """A new, empty store (as CloudFormation creates AWS::CloudFront::KeyValueStore without
        ImportSource); `replace`: a store already under that ARN (an earlier deployment in this
        process) is replaced by the new, empty one."""
        with self._lock:
            if arn in self._stores and not replace:
                raise KeyValueStoreError("EntityAlreadyExists", f"Key value store {arn} already exists.")
            store = self._stores[arn] = KeyValueStore(arn, name, comment)
            return store

    def create_in(self, account: str, name: str, comment: str = "", partition: str = "aws") -> KeyValueStore:
        return self.create(store_arn(account, str(uuid.uuid4()), partition), name, comment)

    def clear(self) -> None:
        with self._lock:
            self._stores.clear()

    def arns(self) -> list[str]:
        with self._lock:
            return list(self._stores)

    def _store(self, arn: str) -> KeyValueStore:
        store = self._stores.get(arn)
        if store is None:
            raise _not_found(arn)
        return store

    def items(self, arn: str) -> dict[str, str]:
        """The store's contents now (what the edge function reads)."""
        with self._lock:
            return dict(self._store(arn).items)

    def describe(self, arn: str) -> dict[str, Any]:
        with self._lock:
            store = self._store(arn)
            return {
                "KvsARN": store.arn,
                "ETag": store.etag,
                "Created": store.created,
                "LastModified": store.last_modified,
                "Status": STATUS,
                **store.totals(),
            }

    def get_key(self, arn: str, key: str) -> dict[str, Any]:
        with self._lock:
            store = self._store(arn)
            if key not in store.items:
                raise KeyValueStoreError("ResourceNotFoundException", f"Key {key} was not found.")
            return {"Key": key, "Value": store.items[key], **store.totals()}

    def list_keys(
        self, arn: str, max_results: int | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        limit = LIST_DEFAULT if max_results is None else int(max_results)
        if not 1 <= limit <= LIST_MAX:
            raise KeyValueStoreError("ValidationException", f"MaxResults must be between 1 and {LIST_MAX}.")
        start = 0
        if next_token:
            try:
                start = int(base64.urlsafe_b64decode(next_token.encode()).decode())
            except (ValueError, UnicodeDecodeError):
                raise KeyValueStoreError("ValidationException", "NextToken is not valid.") from None
        with self._lock:
            keys = sorted(self._store(arn).items.items())
        page = keys[start : start + limit]
        answer: dict[str, Any] = {"Items": [{"Key": k, "Value": v} for k, v in page]}
        if start + limit < len(keys):
            answer["NextToken"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
        return answer

    def update(
        self,
        arn: str,
        if_match: str | None,
        puts: Iterable[tuple[str, str]] = (),
        deletes: Iterable[str] = (),
        *,
        missing_delete_fails: bool = False,
    ) -> dict[str, Any]:
        """Apply puts and deletes at once if `if_match` is the store's ETag; a new ETag after."""
        puts = [(_check_key(k), _check_value(v)) for k, v in puts]
        deletes = [_check_key(k) for k in deletes]
        with self._lock:
            store = self._store(arn)
            if not if_match or if_match != store.etag:
                raise KeyValueStoreError(
                    "ConflictException",
                    f"The If-Match ETag {if_match!r} does not match the key value store's current ETag.",
                )
            if missing_delete_fails:
                for key in deletes:
                    if key not in store.items:
                        raise KeyValueStoreError("ResourceNotFoundException", f"Key {key} was not found.")
            items = dict(store.items)
            for key in deletes:
                items.pop(key, None)
            items.update(puts)
            if sum(len(k.encode()) + len(v.encode()) for k, v in items.items()) > MAX_STORE_BYTES:
                raise KeyValueStoreError(
                    "ServiceQuotaExceededException",
                    f"A key value store holds at most {MAX_STORE_BYTES} bytes.",
                )
            store.items = items
            store.etag = new_etag()
            store.last_modified = datetime.now(UTC)
            return {"ETag": store.etag, **store.totals()}


# The sandbox's stores (one moto server per process).
STORES = KeyValueStores()


# --------------------------------------------------------------------------------------------
# The API, as a moto response class (so moto's parser, serializer and the IAM hook apply)
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _service_exception() -> type[Exception]:
    from moto.core.exceptions import ServiceException

    # Defined outside moto's packages, so that moto's serializer finds the error code in this
    # service's model (status, shape) and nowhere else.
    class KeyValueStoreServiceError(ServiceException):
        pass

    return KeyValueStoreServiceError


@functools.lru_cache(maxsize=1)
def response_class() -> type[Any]:
    from moto.core.responses import ActionResult, BaseResponse

    def answer(call: Callable[[], dict[str, Any]]) -> Any:
        try:
            return ActionResult(call())
        except KeyValueStoreError as exc:
            raise _service_exception()(exc.code, exc.message) from None

    class KeyValueStoreResponse(BaseResponse):
        """The KeyValueStore API over moto's request handling."""

        def __init__(self) -> None:
            super().__init__(service_name=SERVICE)
            self.automated_parameter_parsing = True

        def get_region_from_url(self, request: Any, full_url: str) -> str:
            # SigV4A signs for a region set ("*"), not a region: the service is global.
            return "us-east-1"

        def describe_key_value_store(self) -> Any:
            return answer(lambda: STORES.describe(self._get_param("KvsARN")))

        def get_key(self) -> Any:
            return answer(lambda: STORES.get_key(self._get_param("KvsARN"), self._get_param("Key")))

        def list_keys(self) -> Any:
            return answer(
                lambda: STORES.list_keys(
                    self._get_param("KvsARN"), self._get_param("MaxResults"), self._get_param("NextToken")
                )
            )

        def put_key(self) -> Any:
            return answer(
                lambda: STORES.update(
                    self._get_param("KvsARN"),
                    self._get_param("IfMatch"),
                    puts=[(self._get_param("Key"), self._get_param("Value"))],
                )
            )

        def delete_key(self) -> Any:
            return answer(
                lambda: STORES.update(
                    self._get_param("KvsARN"),
                    self._get_param("IfMatch"),
                    deletes=[self._get_param("Key")],
                    missing_delete_fails=True,
                )
            )

        def update_keys(self) -> Any:
            return answer(
                lambda: STORES.update(
                    self._get_param("KvsARN"),
                    self._get_param("IfMatch"),
                    puts=[(p.get("Key"), p.get("Value")) for p in self._get_param("Puts") or []],
                    deletes=[d.get("Key") for d in self._get_param("Deletes") or []],
                )
            )

    return KeyValueStoreResponse


def signed_for_service(authorization: str | bytes | None) -> bool:
    """Whether an Authorization header's credential scope names this service (SigV4 or SigV4A)."""
    if not authorization:
        return False
    text = authorization.decode(errors="replace") if isinstance(authorization, bytes) else authorization
    credential = text.split("Credential=", 1)[-1].split(",", 1)[0].strip() if "Credential=" in text else ""
    scope = credential.split("/")
    return len(scope) >= 4 and scope[-1] == "aws4_request" and scope[-2] == SERVICE


def _serve(request: Any) -> tuple[int, dict[str, str], Any]:
    return response_class().dispatch(request)


def _wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    from moto.moto_server.werkzeug_app import BackendRequest
    from werkzeug.wrappers import Response

    status, headers, body = _serve(BackendRequest(environ))
    headers = {k: str(v) for k, v in dict(headers).items() if k.lower() != "status"}
    response = Response(body, status=int(status), headers=headers)
    return response(environ, start_response)


def dispatching(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto server's app: requests signed for this service are answered here."""

    @functools.wraps(original)
    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:  # noqa: N807 - the patched name
        if signed_for_service(environ.get("HTTP_AUTHORIZATION")):
            return _wsgi(environ, start_response)
        return original(self, environ, start_response)

    return __call__


def stubbing(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto's in-process stubber (mock_aws): requests signed for this service are answered here."""

    @functools.wraps(original)
    def process_request(self: Any, request: Any) -> Any:
        if signed_for_service(request.headers.get("Authorization")):
            from moto.core.request import normalize_request

            status, headers, body = _serve(normalize_request(request))
            return status, {k: v for k, v in dict(headers).items() if k.lower() != "status"}, body
        return original(self, request)

    return process_request


def moto_implements_it() -> bool:
    from moto.backends import list_of_moto_modules

    return "cloudfrontkeyvaluestore" in set(list_of_moto_modules())

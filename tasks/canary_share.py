"""The edge's canary share in `connections` routing: one key of a CloudFront KeyValueStore.

The edge function (infra/edge/canary_router.js) sends that percent of new `live` WebSocket
handshakes to the `canary` stage. Writes are conditional on the store's ETag, as the
KeyValueStore API requires (`PutKey` with `IfMatch`): read the ETag, write, and when another
writer changed the store in between (`ConflictException`), read again and retry. Setting the
share it already has writes nothing, so every caller may call it again (a retried task, the
alarm rollback racing the state machine's Rollback).

The KeyValueStore API signs with SigV4A; boto3 does that with `awscrt` (in the tasks' asset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from contracts.canary import CANARY_KVS_ARN_VARIABLE, CANARY_SHARE_KEY, parse_share, share_value
from tasks.common import Settings, client, logger
from tasks.errors import InvalidState, TransientAwsError

SERVICE = "cloudfront-keyvaluestore"
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class ShareWritten:
    percent: int
    previous: int
    written: bool  # False: the store already held this share


def store_arn(settings: Settings) -> str:
    if not settings.canary_kvs_arn:
        raise InvalidState(
            f"connections routing needs the edge's KeyValueStore, but {CANARY_KVS_ARN_VARIABLE} is not set "
            "on this task (a deployment without the connection-level canary)"
        )
    return settings.canary_kvs_arn


def read_share(kvs: Any, arn: str) -> int:
    """The share the edge reads now (a missing key is 0, as the edge function reads it)."""
    try:
        value = kvs.get_key(KvsARN=arn, Key=CANARY_SHARE_KEY)["Value"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return 0
        raise
    return parse_share(value)


def set_share(settings: Settings, percent: int) -> ShareWritten:
    """Write `percent` as the edge's canary share unless the store already holds it."""
    value = share_value(percent)
    arn = store_arn(settings)
    kvs = client(SERVICE)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        etag = kvs.describe_key_value_store(KvsARN=arn)["ETag"]
        previous = read_share(kvs, arn)
        if previous == percent:
            return ShareWritten(percent, previous, written=False)
        try:
            kvs.put_key(KvsARN=arn, Key=CANARY_SHARE_KEY, Value=value, IfMatch=etag)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConflictException":
                raise
            if attempt == MAX_ATTEMPTS:
                raise TransientAwsError(
                    f"the canary share could not be written: the KeyValueStore changed under each of {MAX_ATTEMPTS} attempts"
                ) from exc
            logger.info("the KeyValueStore changed between read and write; reading it again")
            continue
        logger.info("canary share set", extra={"percent": percent, "previous": previous})
        return ShareWritten(percent, previous, written=True)
    raise AssertionError("unreachable: every attempt returns or raises")

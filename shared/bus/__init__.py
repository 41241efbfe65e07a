"""The message bus over Redis Streams: publish, consume through consumer groups,
reclaim from dead consumers, dead-letter what cannot be handled, elect leaders
and split shards among replicas."""

from shared.bus.codec import Codec, DecodeError
from shared.bus.connection import connect_redis
from shared.bus.consumer import Consumer, Delivery
from shared.bus.lease import Lease
from shared.bus.publisher import ObserverPublisher, Publisher

__all__ = [
    "Codec",
    "Consumer",
    "DecodeError",
    "Delivery",
    "Lease",
    "ObserverPublisher",
    "Publisher",
    "connect_redis",
]

"""Print the messages of a Kafka topic of the local stack, one per line (Ctrl-C stops).

    python examples/kafka_tail.py [TOPIC] [--bootstrap 127.0.0.1:9092] [--from-beginning]
"""

from __future__ import annotations

import argparse
import sys
import uuid

from confluent_kafka import Consumer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("topic", nargs="?", default="netobs.results")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--from-beginning", action="store_true")
    args = parser.parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"netobs-tail-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if args.from_beginning else "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    try:
        while True:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print(f"kafka: {msg.error()}", file=sys.stderr)
                continue
            value = msg.value()
            print(value.decode("utf-8", "replace") if value else "", flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        consumer.close()


if __name__ == "__main__":
    sys.exit(main())

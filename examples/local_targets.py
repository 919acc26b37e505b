"""Local targets for the demo: an HTTP server on loopback with a healthy, a slow and a failing page.

    python examples/local_targets.py --port 18080

/health answers 200 at once, /slow waits --slow-ms before its first byte, /broken answers 503.
"""

from __future__ import annotations

import argparse
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--slow-ms", type=float, default=250.0)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/slow"):
                time.sleep(args.slow_ms / 1000.0)
            status = 503 if self.path.startswith("/broken") else 200
            body = b"ok\n" if status == 200 else b"unavailable\n"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"local targets on http://127.0.0.1:{args.port}/ (/health, /slow, /broken)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

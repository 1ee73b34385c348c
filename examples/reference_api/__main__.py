"""``python -m examples.reference_api``: serve the reference API with uvicorn."""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    args = parser.parse_args()

    import uvicorn

    uvicorn.run(
        "examples.reference_api.app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        server_header=False,
    )


if __name__ == "__main__":
    main()

"""Run the upload API: ``python -m imagelake.api`` (host and port from the settings)."""

import logging

import uvicorn

from imagelake.api.application import create_app
from imagelake.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="info")


if __name__ == "__main__":
    main()

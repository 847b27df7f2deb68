"""Run the upload API: ``python -m imagelake.api`` (host and port from the settings)."""

import logging.config

import uvicorn

from imagelake.api.application import create_app
from imagelake.api.json_logs import logging_config
from imagelake.settings import get_settings


def main() -> None:
    config = logging_config("INFO")
    logging.config.dictConfig(config)  # before the app is built: its set-up logs too
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=config)


if __name__ == "__main__":
    main()

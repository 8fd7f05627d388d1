"""Allow `python -m binance_exporter`."""

from binance_exporter.cli import main

if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    main()  # pylint: disable=no-value-for-parameter

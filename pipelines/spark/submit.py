"""spark-submit entry point: ``spark-submit --py-files netobs_spark.zip submit.py --lake ... --out ...``."""

import sys

from netobs_spark.__main__ import main

if __name__ == "__main__":
    sys.exit(main())

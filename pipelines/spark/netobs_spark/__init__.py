"""netobs_spark: the nightly batch job (rollups, SLO reports, the HTML report) over the result lake.

Only ``cli`` (the ``netobs report`` sub-command, run in the agent's environment), ``schema`` and ``slo``
import without pyspark; the job itself (``python -m netobs_spark``) runs in the Spark environment.
"""

__version__ = "0.1.0"

"""netobs_flink: the streaming side of netobs.

``netobs_flink.detect`` is the pure detector core (standard library only, no Flink): it is what the unit
tests and ``netobs detect replay`` run. ``netobs_flink.job`` wraps it in a PyFlink DataStream job and must
only be imported inside the Flink virtualenv.
"""

__all__: list[str] = []

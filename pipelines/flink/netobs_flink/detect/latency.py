"""Latency anomaly detection for one series (agent, check, target, phase): the theory of operation.

Every sample ``x`` (a duration in ms, at event time ``t``) is compared with an *expected* value and the
difference (the residual) is measured in robust standard deviations of the recent residuals.

Expected value. Two models learn side by side:
- a non-seasonal level: an EWMA updated with *winsorized* samples (clipped to expected ± ``clip_sigma``),
  so one outlier moves it little while a lasting shift is absorbed, slowly;
- a seasonal profile (``season_s``, default one day): ``buckets`` points across the season, each an EWMA of
  the samples that fell near it (weighted by distance, so the profile is piecewise linear); the seasonal
  expectation is the band the profile spans within one bucket of t (tolerates a phase error and steps).
Each model keeps an EWMA of its absolute error; the seasonal one is used once it has seen a full season
and predicts clearly better (``seasonal_gain``), so non-seasonal series keep the more adaptive level.

Decision. ``level`` = median of the last ``window_samples`` residuals, ``S`` = the scale (EWMA of |residual|
turned into a sigma, never below ``rel_floor`` * expected + ``abs_floor``). Two triggers raise an alert:
- a *level shift*: |level| ≥ ``fire_sigma`` * S for ``fire_count`` consecutive samples (the median makes one
  outlier harmless, so this needs a sustained change);
- a *record excursion*: a single sample beyond ``spike_sigma`` * S and beyond ``spike_margin`` * the largest
  excursion seen in that direction over the last ``envelope_half_life_s`` (so a series with routine spikes
  only alerts on a spike bigger than its usual ones).
It resolves when |level| < ``resolve_sigma`` * S for ``resolve_count`` consecutive samples. Increases and
decreases are separate alerts (``latency_increase`` / ``latency_decrease``); a decrease is informational.

Warm-up: no alert before ``warmup_s`` of history and ``min_samples`` samples (a new series has no baseline;
with seasonality on, it must see one season and ``min_samples`` more, so that the model can be chosen).
While an alert fires the models keep learning with winsorized samples at ``firing_learn_factor`` of their
rate, so a permanent shift ends as the new normal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent
from netobs_flink.detect.robust import MEAN_ABS_TO_SIGMA, Gate, decay_weight, median

_BAND_SHIFTS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # where the seasonal band samples the profile, in buckets


@dataclass(frozen=True)
class LatencyConfig:
    """Tuning of :class:`LatencyDetector` (the defaults are what ``netobs detect replay`` uses)."""

    fire_sigma: float = 3.5
    resolve_sigma: float = 2.0
    window_samples: int = 3
    fire_count: int = 2
    resolve_count: int = 3
    spike_sigma: float = 6.0
    spike_margin: float = 1.3
    level_margin: float = 1.2
    envelope_half_life_s: float = 7 * 86400.0
    level_half_life_s: float = 3600.0
    scale_half_life_s: float = 6 * 3600.0
    clip_sigma: float = 3.0
    rel_floor: float = 0.02
    abs_floor: float = 1e-6
    season_s: float = 86400.0  # 0 turns the seasonal model off
    buckets: int = 48
    season_half_life: float = 3.0  # in seasons
    seasonal_gain: float = 0.7  # use the seasonal model when its error is below this fraction
    warmup_s: float = 86400.0
    min_samples: int = 20
    firing_learn_factor: float = 0.1
    decrease_severity: str = "info"
    increase_severity: str = "warning"

    def __post_init__(self) -> None:
        if self.resolve_sigma >= self.fire_sigma:
            raise ValueError("resolve_sigma must be below fire_sigma")
        if self.window_samples < 1 or self.fire_count < 1 or self.resolve_count < 1:
            raise ValueError("window_samples, fire_count and resolve_count must be >= 1")
        if self.season_s < 0 or (self.season_s > 0 and self.buckets < 4):
            raise ValueError("season_s must be >= 0 and buckets >= 4 when seasonal")


@dataclass
class _Seasonal:
    levels: list[float]
    weights: list[float]  # accumulated weight per bucket (0 = never seen)


@dataclass
class _Track:
    """What one model (non-seasonal or seasonal) remembers about its own residuals."""

    abs_err: float = math.nan  # EWMA of |residual| (winsorized): the scale
    select_err: float = math.nan  # the same over a much longer half-life: which model to trust
    recent: list[float] = field(default_factory=list)  # last residuals, oldest first
    env_up: float = 0.0  # largest single residual above / below expected (decayed)
    env_down: float = 0.0
    level_env_up: float = 0.0  # largest windowed level above / below expected (decayed)
    level_env_down: float = 0.0
    pending: list[float] = field(default_factory=list)  # levels not yet in the envelope
    count: int = 0


@dataclass
class LatencyState:
    """Everything the detector remembers for one series (picklable; Flink keeps it in keyed state)."""

    samples: int = 0
    first_ms: int = 0
    last_ms: int = 0
    level: float = math.nan
    seasonal: _Seasonal | None = None
    plain: _Track = field(default_factory=_Track)
    season_track: _Track = field(default_factory=_Track)
    use_season: bool = False
    up: Gate = field(default_factory=Gate)
    down: Gate = field(default_factory=Gate)
    up_since_ms: int = 0
    down_since_ms: int = 0


@dataclass(frozen=True)
class _Reading:
    at_ms: int
    expected: float
    value: float
    sigma: float
    trace_id: str | None


@dataclass(frozen=True)
class Verdict:
    """What the detector concluded about one sample (for replay output, tests and debugging)."""

    expected: float
    residual: float
    sigma: float
    level_sigma: float
    seasonal: bool
    warm: bool


def _bucket_half_life_s(c: LatencyConfig) -> float:
    """Half-life of a seasonal profile point in "time this bucket has been observed": season_half_life
    seasons of one bucket width (0 without a seasonal model)."""
    return c.season_half_life * (c.season_s / c.buckets) if c.season_s > 0 else 0.0


def _learn_weights(dt_s: float, c: LatencyConfig) -> tuple[float, float, float, float, float]:
    """(level, scale, model-choice, seasonal point weights, envelope decay) for a gap of ``dt_s``: the same
    five numbers for every sample of a regularly probed series, so each detector keeps them for its last gap."""
    return (
        decay_weight(dt_s, c.level_half_life_s),
        decay_weight(dt_s, c.scale_half_life_s),
        decay_weight(dt_s, c.season_half_life * c.season_s),
        decay_weight(dt_s, _bucket_half_life_s(c)),
        1.0 - decay_weight(dt_s, c.envelope_half_life_s),
    )


class LatencyDetector:
    """Online robust level-shift and excursion detector for one latency series. Pure: no I/O, no clock.

    ``observe`` feeds one sample (event time order is assumed; the Flink job sorts within the allowed
    lateness and drops what is older than the last sample) and returns the alert transitions it caused.
    """

    def __init__(
        self,
        config: LatencyConfig | None = None,
        labels: Mapping[str, str] | None = None,
        state: LatencyState | None = None,
    ) -> None:
        self.config = config or LatencyConfig()
        self.labels = dict(labels or {})
        self.state = state or LatencyState()
        for gate in (self.state.up, self.state.down):  # the counts are configuration, not memory
            gate.fire_count, gate.resolve_count = self.config.fire_count, self.config.resolve_count
        self._verdict: tuple[float, float, float, float, bool, bool] | None = None
        self._weights_dt_s = math.nan  # the gap the learning weights below are for (NaN: none yet)
        self._weights = (0.0, 0.0, 0.0, 0.0, 0.0)

    @property
    def last_verdict(self) -> Verdict | None:
        """What the last :meth:`observe` concluded (None before the second sample)."""
        return None if self._verdict is None else Verdict(*self._verdict)

    # -- the seasonal profile -------------------------------------------------------------------
    def _phase(self, at_ms: int) -> float:
        """Position in the season in bucket units, in [0, buckets)."""
        c = self.config
        return ((at_ms / 1000.0) % c.season_s) / c.season_s * c.buckets

    def _seasonal_residual(self, seasonal: _Seasonal, pos: float, x: float) -> tuple[float, float] | None:
        """(distance from ``x`` to the band the profile spans within one bucket of ``pos`` (0 inside),
        residual against the profile at ``pos`` itself); ``pos``: the sample's :meth:`_phase`.

        The band makes detection tolerant to a small phase error and to steps: at a step the band covers
        both sides of it, on a plateau it is tight. The point residual measures the scale (a band
        distance is often 0 and would understate the noise).
        """
        n = self.config.buckets
        levels, weights = seasonal.levels, seasonal.weights
        # The profile within one bucket of t: at five positions, the piecewise-linear value between the
        # two points around it (the one with data when only one has; none when neither has), and the points
        # on either side of that span: at a step that falls between two points, the nearest "clean" point
        # on each side is then in the band.
        low, high = math.inf, -math.inf  # min() and max() of the values, kept as they come
        point: float | None = None
        for shift in _BAND_SHIFTS:
            q = (pos + shift) % n
            fq = int(q)  # q >= 0: int() is floor(); q can round up to n itself (a tiny negative % n)
            a = fq if fq < n else fq - n
            b = a + 1 if a + 1 < n else 0
            if weights[a] <= 0:
                if weights[b] <= 0:
                    continue
                v = levels[b]
            elif weights[b] <= 0:
                v = levels[a]
            else:
                frac = q - fq
                v = levels[a] * (1.0 - frac) + levels[b] * frac
            low = v if v < low else low
            high = v if v > high else high
            if shift == 0.0:
                point = v
        i = math.floor(pos)
        for k in (-1, 2):
            if weights[(i + k) % n] > 0:
                v = levels[(i + k) % n]
                low = v if v < low else low
                high = v if v > high else high
        if low > high:  # no point with data near at_ms
            return None
        band = x - high if x > high else x - low if x < low else 0.0
        return band, x - (point if point is not None else (low + high) / 2.0)

    def _learn_seasonal(
        self, seasonal: _Seasonal, pos: float, x: float, learn: float, base: float, *, clip_abs: float | None = None
    ) -> None:
        """Move the two profile points around ``pos`` (the sample's :meth:`_phase`) toward ``x``, each by its
        share; ``base``: a point's EWMA weight for this sample's gap (see :func:`_bucket_half_life_s`). With
        ``clip_abs``, ``x`` is winsorized against each point's own level (not the interpolated profile, which
        would leak one point's level into its neighbour at a step)."""
        c = self.config
        i = math.floor(pos) % c.buckets
        j = (i + 1) % c.buckets
        frac = pos - math.floor(pos)
        for b, share in ((i, 1.0 - frac), (j, frac)):
            if share <= 0:
                continue
            seasonal.weights[b] += share
            # Running mean while the bucket is new, then an EWMA.
            running = share / seasonal.weights[b]
            alpha = (running if running > base * share else base * share) * learn  # max(), inline
            step = x - seasonal.levels[b]
            if clip_abs is not None:
                step = -clip_abs if step < -clip_abs else clip_abs if step > clip_abs else step  # clip()
            seasonal.levels[b] += alpha * step

    # -- the main step ----------------------------------------------------------------------------
    def observe(self, at_ms: int, value_ms: float, trace_id: str | None = None) -> list[AlertEvent]:
        """Feed one sample; returns the alert transitions (firing/resolved) it caused, oldest first."""
        c, s = self.config, self.state
        if not math.isfinite(value_ms):
            return []
        if s.samples > 0 and at_ms < s.last_ms:
            return []  # too late: the series already moved on
        if s.samples == 0:
            s.first_ms = s.last_ms = at_ms
            s.level = value_ms
            s.samples = 1
            if c.season_s > 0:
                s.seasonal = _Seasonal([value_ms] * c.buckets, [0.0] * c.buckets)
                base = decay_weight(0.0, _bucket_half_life_s(c))
                self._learn_seasonal(s.seasonal, self._phase(at_ms), value_ms, 1.0, base)
            return []
        dt_s = (at_ms - s.last_ms) / 1000.0
        s.last_ms = at_ms
        s.samples += 1
        # (This runs once per series, phase and window: written for speed, each step as the docstring says.)

        plain, season_track, seasonal = s.plain, s.season_track, s.seasonal
        r_plain = value_ms - s.level
        season_mature = seasonal is not None and (at_ms - s.first_ms) / 1000.0 >= c.season_s
        pos = self._phase(at_ms) if seasonal is not None else 0.0  # once, for the band and the learning
        # Both models once the seasonal one has seen a season (r_season: the band's residual, for
        # detection; r_point: against the profile itself, for the scale).
        two, r_season, r_point = False, 0.0, 0.0
        if season_mature and seasonal is not None:
            both = self._seasonal_residual(seasonal, pos, value_ms)
            if both is not None:
                two, (r_season, r_point) = True, both
        if not two or season_track.count < c.min_samples:
            s.use_season = False
        elif s.use_season:  # hysteresis: leave the seasonal model only when it stops paying clearly
            s.use_season = season_track.select_err < (1.0 + c.seasonal_gain) / 2.0 * plain.select_err
        else:
            s.use_season = season_track.select_err < c.seasonal_gain * plain.select_err
        track, residual = (season_track, r_season) if s.use_season else (plain, r_plain)
        expected = value_ms - residual

        floor = c.rel_floor * abs(expected) + c.abs_floor
        abs_err = track.abs_err
        sigma = (abs_err if math.isfinite(abs_err) else 0.0) * MEAN_ABS_TO_SIGMA
        sigma = floor if floor > sigma else sigma
        window = c.window_samples
        recent = plain.recent
        recent.append(r_plain)
        if len(recent) > window:
            del recent[:-window]
        if two:
            recent = season_track.recent
            recent.append(r_season)
            if len(recent) > window:
                del recent[:-window]
        # Each model's level (median of its recent residuals), once: detection and learning both use it.
        plain_level = median(plain.recent) if len(plain.recent) >= window else 0.0
        season_level = 0.0
        if two:
            season_level = median(season_track.recent) if len(season_track.recent) >= window else 0.0
        level = season_level if s.use_season else plain_level
        level_sigma = level / sigma
        warm = (at_ms - s.first_ms) / 1000.0 >= c.warmup_s and s.samples >= c.min_samples
        if c.season_s > 0:  # not before the seasonal model can be chosen: a daily step is not an anomaly
            warm = warm and season_mature and season_track.count >= c.min_samples
        self._verdict = (expected, residual, sigma, level_sigma, s.use_season, warm)

        events: list[AlertEvent] = []
        up, down = s.up, s.down
        was_firing = up.on or down.on
        if warm:
            spike_bound = c.spike_sigma * sigma
            spike_up = residual >= spike_bound and residual >= c.spike_margin * track.env_up
            spike_down = -residual >= spike_bound and -residual >= c.spike_margin * track.env_down
            shift_up = level_sigma >= c.fire_sigma and level >= c.level_margin * track.level_env_up
            shift_down = -level_sigma >= c.fire_sigma and -level >= c.level_margin * track.level_env_down
            clear_up, clear_down = level_sigma < c.resolve_sigma, -level_sigma < c.resolve_sigma
            now: _Reading | None = None
            # A gate that neither counts this sample nor can be forced by a spike only resets its streak.
            if (clear_up if up.on else shift_up) or (spike_up and not up.on):
                now = _Reading(at_ms, expected, value_ms, sigma, trace_id)
                events += self._step("up", now, shifted=shift_up, spike=spike_up, clear=clear_up)
            else:
                up.streak = 0
            if (clear_down if down.on else shift_down) or (spike_down and not down.on):
                now = now or _Reading(at_ms, expected, value_ms, sigma, trace_id)
                events += self._step("down", now, shifted=shift_down, spike=spike_down, clear=clear_down)
            else:
                down.streak = 0
        firing = was_firing or up.on or down.on

        # Learn. Residuals are winsorized; while firing, learning is slower so the anomaly is not
        # absorbed at once, yet a permanent shift becomes the new normal.
        learn = c.firing_learn_factor if firing else 1.0
        if dt_s != self._weights_dt_s:  # a regularly probed series has one gap: computed once, not per sample
            self._weights_dt_s = dt_s
            self._weights = _learn_weights(dt_s, c)
        w_level, w_scale, w_select, w_bucket, decay = self._weights
        w_level, w_scale, w_select = w_level * learn, w_scale * learn, w_select * learn
        clip_abs = c.clip_sigma * sigma
        s.level += w_level * (-clip_abs if r_plain < -clip_abs else clip_abs if r_plain > clip_abs else r_plain)
        weights = (w_scale, w_select, decay)
        self._learn_track(plain, r_plain, r_plain, plain_level, floor=floor, weights=weights, firing=firing)
        if two:
            self._learn_track(
                season_track, r_season, r_point, season_level, floor=floor, weights=weights, firing=firing
            )
        if seasonal is not None:
            # The first season is learnt as it comes; after that, winsorized like the level.
            self._learn_seasonal(seasonal, pos, value_ms, learn, w_bucket, clip_abs=clip_abs if season_mature else None)
        return events

    def _learn_track(
        self,
        t: _Track,
        r: float,
        r_scale: float,
        level: float,
        *,
        floor: float,
        weights: tuple[float, float, float],
        firing: bool,
    ) -> None:
        """One model's scale, model-choice error and envelopes. The scale comes from the point residual
        (``r_scale``); the choice of model from the residual that detection uses (``r``: the band's, for
        the seasonal model: a step it expects costs it nothing); ``level`` is the median of its recent
        residuals. (Once per model and sample: min and max are written as the comparisons they make.)"""
        c = self.config
        w_scale, w_select, decay = weights
        t.count += 1
        count = t.count
        if count > 1:
            cap = c.clip_sigma * t.abs_err * MEAN_ABS_TO_SIGMA
            cap = floor if floor > cap else cap
        else:
            cap = math.inf
        err, select = abs(r_scale), abs(r)
        err = cap if cap < err else err
        select = cap if cap < select else select
        if count == 1:
            t.abs_err, t.select_err = err, select
        elif count <= c.min_samples:  # running mean while young: an EWMA from one value is noisy
            t.abs_err += (err - t.abs_err) / count
            t.select_err += (select - t.select_err) / count
        else:
            t.abs_err += w_scale * (err - t.abs_err)
            t.select_err += w_select * (select - t.select_err)

        # Envelopes. A level enters the envelope only once it has passed without raising an alert
        # (fire_count samples later), so the onset of an anomaly never raises its own bar.
        t.level_env_up *= decay
        t.level_env_down *= decay
        pending = t.pending
        pending.append(level)
        if firing:
            pending.clear()
        elif len(pending) > c.fire_count:
            old = pending.pop(0)
            env_up, env_down = t.level_env_up, t.level_env_down
            t.level_env_up = old if old > env_up else env_up
            t.level_env_down = -old if -old > env_down else env_down
        if firing:  # the anomaly itself raises the bar for the next record excursion
            up, down = t.env_up, t.env_down
            t.env_up = r if r > up else up
            t.env_down = -r if -r > down else down
        else:
            up, down = t.env_up * decay, t.env_down * decay
            t.env_up = r if r > up else up
            t.env_down = -r if -r > down else down

    def _step(self, direction: str, now: _Reading, *, shifted: bool, spike: bool, clear: bool) -> list[AlertEvent]:
        s, c = self.state, self.config
        at_ms = now.at_ms
        gate = s.up if direction == "up" else s.down
        transition = gate.update(at_ms, shifted, clear)
        trigger = "level shift"
        if transition is None and spike and not gate.on:
            gate.force(True)
            transition, trigger = "fired", "record excursion"
        if transition is None:
            return []
        kind = "latency_increase" if direction == "up" else "latency_decrease"
        severity = c.increase_severity if direction == "up" else c.decrease_severity
        if transition == "fired":
            if direction == "up":
                s.up_since_ms = at_ms
            else:
                s.down_since_ms = at_ms
        started = s.up_since_ms if direction == "up" else s.down_since_ms
        status = FIRING if transition == "fired" else RESOLVED
        what = "increased" if direction == "up" else "decreased"
        annotations = {
            "summary": f"latency {what}" if status == FIRING else "latency back to normal",
            "trigger": trigger if status == FIRING else "recovered",
            "baseline_ms": f"{now.expected:.3f}",
            "current_ms": f"{now.value:.3f}",
            "sigma_ms": f"{now.sigma:.3f}",
        }
        if now.trace_id:
            annotations["trace_id"] = now.trace_id
        return [
            AlertEvent(
                kind=kind,
                status=status,
                severity=severity,
                at_ms=at_ms,
                started_at_ms=started,
                labels=self.labels,
                annotations=annotations,
            )
        ]

"""The outliers of a robust fit (``outliers=...``) in ``learning_results`` and as signals.

``decomposition(algorithm="hnmf", outliers="auto")`` stores what
:func:`~hyperspy_hnmf.solvers.robust_nmf` found in
``learning_results.hnmf["outliers"]`` (sparse index lists in the signal's own
flat indices, so save/load keeps them); :func:`get_outliers` returns them as
HyperSpy signals.
"""

import numpy as np

from .results import check_stamp

__all__ = ["get_outliers", "outlier_info", "outlier_line"]


def _kept_indices(mask, size):
    return np.arange(size) if mask is None else np.flatnonzero(~np.asarray(mask).ravel())


def outlier_info(found, nav_mask=None, sig_mask=None, n_nav=None, n_sig=None):
    """What to store of an :class:`~hyperspy_hnmf.solvers.Outliers`: arrays and numbers.

    Rows and columns of the (masked) fitted matrix become flat indices of the
    signal's navigation and signal spaces.

    Examples
    --------
    >>> from hyperspy_hnmf.solvers import Outliers
    >>> o = Outliers((2, 3), np.array([1]), np.array([2]), np.array([9.0]), np.array([1.0]),
    ...              np.array([0]), np.array([], int), 1e-6, 4.89, "kullback-leibler", 2, 1.0)
    >>> info = outlier_info(o, sig_mask=np.array([False, True, False, False]))
    >>> info["navigation_index"].tolist(), info["signal_index"].tolist(), info["dead_channels"].tolist()
    ([1], [3], [0])
    """
    n_nav = found.shape[0] if n_nav is None else n_nav
    n_sig = found.shape[1] + (0 if sig_mask is None else int(np.sum(sig_mask))) \
        if n_sig is None else n_sig
    nav = _kept_indices(nav_mask, n_nav)
    sig = _kept_indices(sig_mask, n_sig)
    return {
        "navigation_index": nav[found.rows],
        "signal_index": sig[found.cols],
        "values": found.values,
        "expected": found.expected,
        "dead_channels": sig[found.dead_channels],
        "hot_channels": sig[found.hot_channels],
        "false_alarm": float(found.false_alarm),
        "z_threshold": float(found.z_threshold),
        "rounds": int(found.rounds),
        "dispersion": float(found.dispersion),
        "summary": found.summary(),
    }


def outlier_line(info):
    """The one-line summary printed after a robust fit ("" without one).

    Examples
    --------
    >>> outlier_line({})
    ''
    """
    outliers = info.get("outliers")
    return "" if not outliers else f"  {outliers['summary']}"


def get_outliers(signal):
    """The outliers a robust hnmf decomposition left out, as HyperSpy signals.

    Parameters
    ----------
    signal : hyperspy.signals.BaseSignal
        Decomposed with ``algorithm="hnmf"`` and ``outliers="auto"`` (or a
        false-alarm rate).

    Returns
    -------
    per_position : hyperspy.signals.BaseSignal
        Navigation-shaped (an image for a 2D scan): the number of outlying
        entries at every probe position (dead and hot channels count at
        every position), with the scan's calibration.
    per_channel : hyperspy.signals.BaseSignal
        Signal-shaped (a detector image or a spectrum): the number of probe
        positions at which every channel was left out (dead and hot
        channels: all of them).
    entries : dict
        ``navigation_index``, ``signal_index`` (flat indices in data
        order), ``values`` (the data there), ``expected`` (the model there),
        ``dead_channels``, ``hot_channels`` (flat signal indices) and the
        rule (``false_alarm``, ``z_threshold``, ``summary``).

    Raises
    ------
    ValueError
        If the signal has no robust hnmf decomposition.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> rng = np.random.default_rng(0)
    >>> data = rng.poisson(rng.random((10, 8, 2)) @ rng.random((2, 50)) * 20).astype("float32")
    >>> data[[2, 5, 7, 9], [3, 1, 6, 0], [7, 12, 20, 41]] = 900     # cosmic-ray hits
    >>> s = hs.signals.Signal1D(data)
    >>> s.decomposition(algorithm="hnmf", output_dimension=2, loss="kl", outliers="auto",
    ...                 random_state=0, print_info=False)
    >>> per_position, per_channel, entries = get_outliers(s)
    >>> per_position.data.shape, int(per_position.data[2, 3]), int(per_channel.data[7])
    ((10, 8), 1, 1)
    """
    info = check_stamp(signal)
    entries = info.get("outliers")
    if not entries:
        raise ValueError(
            "This signal's hnmf decomposition was not robust; run "
            "s.decomposition(algorithm='hnmf', output_dimension=k, outliers='auto') first.")
    am = signal.axes_manager
    n_nav, n_sig = max(am.navigation_size, 1), am.signal_size
    bad = np.union1d(entries["dead_channels"], entries["hot_channels"]).astype(np.int64)
    per_row = np.bincount(np.asarray(entries["navigation_index"], dtype=np.int64),
                          minlength=n_nav) + bad.size
    per_channel = np.bincount(np.asarray(entries["signal_index"], dtype=np.int64),
                              minlength=n_sig)
    per_channel[bad] = n_nav
    position = signal._get_navigation_signal(
        data=per_row.reshape(am._navigation_shape_in_array or (1,)).astype(np.int64))
    position.metadata.General.title = f"Outlying entries per probe position of {_title(signal)}"
    channel = signal._get_signal_signal(
        data=per_channel.reshape(am._signal_shape_in_array).astype(np.int64))
    channel.metadata.General.title = f"Probe positions left out per channel of {_title(signal)}"
    for result in (position, channel):
        result.metadata.Signal.quantity = "Outliers (count)"
    return position, channel, dict(entries)


def _title(signal):
    return signal.metadata.General.title or "the signal"

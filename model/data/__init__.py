"""Offline training and evaluation data (numpy/scipy/soundfile only; nothing downloads).

Modules: ``speech`` (speech sources and splits), ``noise`` (procedural noise), ``augment``
(level, tilt/EQ, synthetic rooms), ``mixer`` (SNR/level mixing), ``corpora`` (user folders),
``stream`` (the training stream), ``synth`` (``hearmask data synth``), ``cache`` (on-disk cache).
"""

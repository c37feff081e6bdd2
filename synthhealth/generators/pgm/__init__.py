"""Private-PGM post-processing in plain numpy: fit a graphical model to noisy marginals, then sample.

Everything here is post-processing of differentially private measurements: it never sees the data.

Modules, one job each:

- :mod:`.domain` -- :class:`Domain`, attribute names and numbers of states;
- :mod:`.measurement` -- :class:`Measurement`, a noisy marginal and its noise scale;
- :mod:`.factor` -- :class:`Factor`, a named-axis array for variable elimination;
- :mod:`.junction_tree` -- triangulation, maximal cliques, junction trees, :func:`junction_tree_size`;
- :mod:`.inference` -- belief propagation on a junction tree and marginal queries;
- :mod:`.sampling` -- vectorised ancestral sampling;
- :mod:`.model` -- :class:`GraphicalModel`, the fitted model (marginals, samples, saved state);
- :mod:`.estimation` -- :func:`estimate`, mirror descent on the weighted least-squares loss.

Examples
--------
>>> import numpy as np
>>> from synthhealth.generators.pgm import Domain, Measurement, estimate
>>> dom = Domain(("sex", "death"), (2, 2))
>>> ms = [Measurement(("sex", "death"), np.array([[300.0, 200.0], [250.0, 250.0]]), sigma=5.0)]
>>> model = estimate(dom, ms)
>>> round(model.total)
1000
>>> model.sample(2, np.random.default_rng(0)).shape
(2, 2)
"""

from __future__ import annotations

from .domain import Domain
from .estimation import FitProgress, estimate, estimate_total, measurement_loss
from .factor import Factor
from .junction_tree import JunctionTree, build_junction_tree, junction_tree_size, maximal_cliques
from .measurement import Measurement
from .model import FitInfo, GraphicalModel

__all__ = [
    "Domain",
    "Factor",
    "FitInfo",
    "FitProgress",
    "GraphicalModel",
    "JunctionTree",
    "Measurement",
    "build_junction_tree",
    "estimate",
    "estimate_total",
    "junction_tree_size",
    "maximal_cliques",
    "measurement_loss",
]

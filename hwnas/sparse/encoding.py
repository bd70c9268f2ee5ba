"""The architecture encoding of the early predictor: one-hot per gene.

SparseNAS Sec. 5.2.1 feeds "the network architecture" to the predictor without fixing a format;
Once-for-All's accuracy predictor one-hot encodes each layer's kernel and expand ratio. hwnas does
the same for any registered space: gene ``i`` with ``choices[i]`` options becomes ``choices[i]``
0/1 features, concatenated in gene order (``sum(space.choices)`` features). It needs no knowledge
of what a gene means, so it fits every space; feature names are ``gene=label``
(:func:`feature_names`). Genes are canonical first (:meth:`~hwnas.spaces.base.SearchSpace.canonical`):
on an elastic-depth space the genes of switched-off layers read as option 0, so the features
depend only on the subnet that runs (unchanged on spaces without depth genes).
"""

from __future__ import annotations

import numpy as np

from hwnas.spaces.base import SearchSpace

ENCODING = "onehot-per-gene"


def encode(space: SearchSpace, genes_matrix: np.ndarray) -> np.ndarray:
    """``(n, num_genes)`` genes -> ``(n, sum(choices))`` float64 one-hot features."""
    m = space.canonical_matrix(genes_matrix)
    choices = np.asarray(space.choices, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(choices)[:-1]])
    out = np.zeros((m.shape[0], int(choices.sum())), dtype=np.float64)
    out[np.arange(m.shape[0])[:, None], offsets[None, :] + m] = 1.0
    return out


def feature_names(space: SearchSpace) -> list[str]:
    return [f"{space.gene_name(i)}={label}" for i in range(space.num_genes) for label in space.gene_labels(i)]

"""Data layer: annotation and feature readers, word vectors, the synthetic benchmark, the
torch dataset and dataset statistics (SPEC sections 2 and 6)."""

from pln.data.annotations import QuirkReport, Sample, read_split
from pln.data.dataset import MomentDataset, build_dataset, collate, make_loader
from pln.data.features import FeatureStore, resample_units
from pln.data.glove import WordVectors, load_word_vectors
from pln.data.tokenize import tokenize

__all__ = ["FeatureStore", "MomentDataset", "QuirkReport", "Sample", "WordVectors", "build_dataset",
           "collate", "load_word_vectors", "make_loader", "read_split", "resample_units", "tokenize"]

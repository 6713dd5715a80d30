"""Procedures: what an experiment trains, unit by unit, on one contract (base: Unit, Procedure, the registry).
imp: iterative magnitude pruning with the reinit, random and one-shot controls and late resetting.
edge_popup: supermasks of a randomly initialised network (Ramanujan et al. 2020).
prune_finetune: prune and fine-tune (Han et al. 2015) beside the ticket, reinit, scratch and one-shot controls.
transfer: an imp experiment's tickets trained on another data set or optimizer (Morcos et al. 2019).
channel_search: Early-Bird's structured search, channel masks from batch-norm scales (You et al. 2020)."""

from . import channel_search, edge_popup, imp, prune_finetune, transfer  # noqa: F401,E402  (registers the book's procedures)

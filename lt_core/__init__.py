"""lt_core: the small engine behind the Lottery Ticket Book.

Data flows one way: config -> data, models, masks -> pruning -> train -> lottery -> store -> results
-> plots / scorecards. Modules import only "downward" along that chain.
"""

__version__ = "0.1.0"

"""The fast engine's schedulers: they decide the order in which components act.

* ``windows``: windows of one lookahead (the usual loop);
* ``events``: an event heap, for systems with no lookahead at all;
* ``single``: a plain loop for one synchronous producer.
"""

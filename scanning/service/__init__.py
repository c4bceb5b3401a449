"""The scan service: what the function app's activities and timers do, as plain functions.

``scanning/functions/`` parses trigger input and calls one function here; tests call the same
functions directly against Azurite and a real registry. One module per job:

* ``payloads``: what activities exchange (``ScanRequest`` and the typed step payloads);
* ``context``: ``Services`` (store, layer cache, advisory index, notification queue);
* ``scan``: one scan, step by step (``prepare_scan`` → ``analyze_layer`` → ``assess_image``);
* ``evaluation``: stored inventories, the verdict of a set of inventories, notifications;
* ``rules``: disable rules in force and their effect on stored verdicts;
* ``rescan`` / ``rematch`` / ``workers``: the weekly rescan, one image and one chunk of it,
  and its worker processes;
* ``maintenance``: catch-up, the daily advisory refresh and the pull sync.

The verdict itself is decided in ``scanning.assessment``; storage is ``scanning.store``.
"""

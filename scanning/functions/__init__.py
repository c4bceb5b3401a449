"""The function app's triggers, one blueprint per concern, registered by ``function_app.py``.

Function bodies stay thin: parse the input, call one core function, return plain JSON.
"""

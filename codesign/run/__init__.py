"""A run: its directory, where its study lives, how the study is opened, what it records.

The search, ``codesign report`` and ``codesign export`` all read a run through
this package; none of it imports the search or TensorFlow.
"""

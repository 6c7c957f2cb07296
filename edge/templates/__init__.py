"""Files ``edge init`` writes: a node config, a first rule file and a systemd unit.

They are :class:`string.Template` texts (``$name`` placeholders) read as package data, so a
production install from the wheel carries them.
"""

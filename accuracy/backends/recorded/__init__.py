"""``recorded``: replay model outputs dumped elsewhere (e.g. on an Ascend host) from a folder."""

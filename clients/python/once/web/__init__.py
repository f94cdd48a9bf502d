"""``once web``: the dashboard of the Once job queue (Flask; no CDN, every asset is in this package)."""

"""The web dashboard (issue 12): data assembly, routes and the bundled page."""

"""The referral domain: case events, their rules, the directory of agencies, and who may see what.

Nothing here imports a web framework, a database driver, or an outer layer of the project.
"""

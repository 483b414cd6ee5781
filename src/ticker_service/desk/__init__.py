"""The trading desk: a page served by the service itself (`/desk`), its assets inside the package.

Plain ES modules and one stylesheet, no build step and no request to another host; every data call
goes to this service's own API with the API key the user typed in (kept in sessionStorage).
"""

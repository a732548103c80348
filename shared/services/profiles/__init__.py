"""The unified customer profile: who sent a message, merges, unmerges, erasure and export.

The service layer between the profile-merge handler / the agent API and the repositories,
one module per capability (import from the module; this package re-exports nothing):

- :mod:`~shared.services.profiles.resolution`: the customer who sent a message (identity
  resolution, merging the profiles a message's verified identities link).
- :mod:`~shared.services.profiles.merge`: merging and unmerging profiles, following merges.
- :mod:`~shared.services.profiles.inbound`: recording an inbound message in the customer's
  conversation, consent keywords, survey answers.
- :mod:`~shared.services.profiles.erasure`: erasure, the retention sweep, the export.
"""

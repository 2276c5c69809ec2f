"""The device registry: a resource server under ``/api/v1`` on the same token store."""

"""The nimbus.cloud API service: Keystone, nova-api and Horizon in one small process."""

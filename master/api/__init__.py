"""The REST API's model: functions served, roles, request checks, users."""

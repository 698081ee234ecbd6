"""The HTTPS endpoint nodes call to download artifacts and enroll."""

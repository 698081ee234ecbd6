def pytest_configure(config):
    config.addinivalue_line("markers", "integration: runs real Salt daemons")
    config.addinivalue_line("markers", "lab: needs root and the systemd-nspawn lab")

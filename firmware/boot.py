# Nothing before main.py: the agent brings Wi-Fi up and keeps it up (fleetflow/net.py).

"""Outcomes: what humans did with each AI event (resolve), the daily and rolling marts with Wilson
intervals (rates), recovery after failures (recovery), and calibration of confidence (calibration)."""

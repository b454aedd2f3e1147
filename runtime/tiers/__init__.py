"""Tiers: the Big-Little cascade, the DDNN, device aggregation and the coordinator."""

"""`gsch bench --quality`: how close the planner's placements come to exact optima.

Seeded instances (`instances`) are placed request by request through the planner as a worker
would (`placing`) and compared with what an exact solver finds for the whole instance at once
(`optimum`, HiGHS through the optional `highspy`): nodes used where everything fits,
requests placed where not everything does, and total round-trip time from the sources.
`report` runs the families and prints the table.
"""

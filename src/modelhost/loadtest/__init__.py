"""Know your endpoints: Locust load tests, the price table and the cost advisor.

`run` starts Locust in a process of its own (`locust_main`; Locust monkey-patches whatever
imports it), `report`/`html_report` write the results, `prices` holds the dated price
tables and the cost arithmetic, `advisor` walks the hosting-option decision tree.
"""

"""What the BDD steps stand on: the platform under test (:mod:`.deployment`), the scenario's
merchant built through the portal (:mod:`.world`), emulated terminals (:mod:`.terminals`), the
words of the feature files (:mod:`.vocabulary`) and the failure report (:mod:`.http_journal`,
:mod:`.attachments`)."""

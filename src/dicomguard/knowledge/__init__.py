"""DICOM knowledge shared by every part: what the standard and real products say, as data.

Below scan, report, store, gateway and lab; above dul (it may use dul's names, never the
reverse). It reads its packaged data files (``dicomguard/data/``) and opens no socket
(``dicomguard/tests/test_import_layers.py`` checks both). Modules:

* ``fingerprint``   A-ASSOCIATE-AC identity -> product, version, releases, CVEs
* ``findings``      the DG-0xx catalogue: severity, title, why, remediation
* ``sopclasses``    the SOP classes behind each service name of the output contract
* ``aedefaults``    vendor default AE titles (each with its source) and the generic wordlist
* ``honeypot``      what known DICOM honeypots answer, per endpoint and across a scan
* ``host_identity`` one host's DICOM records named from its Orthanc REST record
* ``verdicts``      the verdict keys of a record's confidence map and their levels
* ``synthetic``     clearly fake patients (DGFAKE/DGSYN) for the lab, the test kit and the
  ``--intrusive`` test object
"""

import Testing
@testable import Store

@Test("A statement's name is written once: the name it runs under comes from the property that defines it")
func statementNames() {
    #expect(QueueSQL.jobClaim.name == "JobClaim")
    #expect(QueueSQL.jobInsertScreeningOnActivation.name == "JobInsertScreeningOnActivation")
    #expect(ArchiveSQL.imageCount.name == "ImageCount")
    #expect(ModelSQL.modelVersionPromote.name == "ModelVersionPromote")
    #expect(ReportSQL.newestResultsOfPatients.name == "NewestResultsOfPatients")
    #expect(QueueSQL.jobClaim.sql.contains("FOR UPDATE SKIP LOCKED"))
}
